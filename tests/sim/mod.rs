//! A small deterministic model of an Emperor, a fastrouter and up to a few
//! vassals, driving the sans-IO engine the way the runtime does.
//!
//! The model follows `docs/UWSGI.md`:
//! - The Emperor notices an mtime only when it scans: after each stats read
//!   (the snapshot is written *before* the scan, docs/UWSGI.md §1) or on its own every
//!   `emperor-freq`. A reload sets `last_mod = mtime`, `respawns += 1`,
//!   `ready = accepting = 0`, `last_run = now` at once (docs/UWSGI.md §4), only if the
//!   mtime is newer in whole seconds (docs/UWSGI.md §2).
//! - The vassal then begins its reload (with `unsubscribe-on-graceful-reload`
//!   its nodes are removed, or death-marked while busy), accepts again no
//!   sooner than 1 s later (`accepting = 1`, `last_accepting = now`, same pid,
//!   docs/UWSGI.md §5-§6), then announces (node re-added, fresh `last_check`).
//! - Serving vassals announce every few seconds; nodes never expire by
//!   themselves (docs/UWSGI.md §9.4).
//! - A second reload request reaching a vassal mid-reload either merges or
//!   wedges it (docs/UWSGI.md §12): it accepts and announces once, then stays out.
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
    /// It never re-subscribes after its reload (docs/UWSGI.md §9.6); a repair fixes
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
    /// answers 500 (docs/UWSGI.md §6.4). Only `--probe` tells.
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
    /// docs/UWSGI.md §9.6); its next generation subscribes.
    FirstUnsubscribed,
    /// The first vassal's node is stale (no announce for 40 s) but still
    /// listed with death_mark 0 (docs/UWSGI.md §9.4); its next generation announces.
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
    /// start-unsubscribed; docs/UWSGI.md §6.5).
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
            // The model's vassals announce every ANNOUNCE_EVERY_S.
            default_subscribe_freq_s: ANNOUNCE_EVERY_S,
            notice_window_ms: 3_000,
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

    fn keys_of(&self, i: usize) -> u8 {
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

/// The Emperor's record of a vassal (docs/UWSGI.md §13.4).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rec {
    pub pid: i64,
    pub last_mod: i64,
    pub ready: i64,
    pub accepting: i64,
    pub last_accepting: i64,
    pub respawns: i64,
    pub cursed: i64,
    pub born: i64,
    pub first_run: i64,
    pub last_run: i64,
}

/// What the vassal's processes are doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proc {
    /// Accepting and announcing.
    Serving,
    /// The Emperor sent the reload (the master acts on it at once: with
    /// unsubscribe-on-graceful-reload its nodes go): workers going, exec,
    /// app loading.
    Reloading { since: u64 },
    /// A fresh master after a crash, starting.
    Starting { since: u64 },
    /// Worker 1 accepts; the announce has not reached the fastrouter yet.
    Accepted { at: u64 },
    /// Stopped by the Emperor (config removed): exiting.
    Stopping { at: u64 },
    /// No process.
    Gone,
}

/// What writing `S` to the FIFO of a vassal that never announced does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RepairOutcome {
    Fixes,
    DoesNotHelp,
    NoFifo,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VassalW {
    /// The config file's mtime, and whether it exists.
    pub mtime: i64,
    pub exists: bool,
    /// In the Emperor's vassals[] (None: gone or blacklisted).
    pub rec: Option<Rec>,
    pub blacklist_attempt: Option<i64>,
    pub proc_: Proc,
    /// Missing-announce fault: it never announces (until repaired).
    pub blocked: Option<RepairOutcome>,
    /// A second reload request wedged it (docs/UWSGI.md §12): it accepts and
    /// announces once, then stays out.
    pub wedged: bool,
    /// The wedge came from someone else's reload reaching a freshly
    /// (re)started master: nothing in the stats shows it (one reload
    /// request, one announce), so the engine cannot be asked to see it.
    pub wedge_unseen: bool,
    /// The config's mtime was last set by someone else.
    pub foreign_mtime: bool,
    /// Its app answers 500 (BrokenApp fault).
    pub broken: bool,
    /// The generation running was started during this run (reload or
    /// crash), so its announce completes a reload.
    pub new_gen: bool,
    /// A reload started during this run completed (accepted and announced).
    pub reloaded: bool,
    /// Action::Touch received for it.
    pub touches: u8,
    /// The new generation announced before accepting.
    pub announced_early: bool,
    /// The wall second of the announce at `master_cycles == 1`.
    pub announce_again: Option<i64>,
    /// `last_mod` when it went into the blacklist.
    pub gone_last_mod: i64,
    /// Key bitmask.
    pub keys: u8,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeW {
    pub key: u8,
    /// Index of the vassal, or None for the other host's node.
    pub owner: Option<usize>,
    pub last_check: i64,
    pub death_mark: bool,
    /// Sessions in flight (`ref > 0`): a death-marked node stays listed.
    pub busy: bool,
    pub marked_at: u64,
}

/// A driver answer to an action, not yet delivered.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Answer {
    Touch {
        v: usize,
        mtime: i64,
    },
    /// An inotify event for a config (ours or someone else's).
    Changed {
        v: usize,
        mtime: i64,
    },
    Removed {
        v: usize,
    },
    Unsubscribe {
        v: usize,
        key: u8,
    },
    Subscribe {
        v: usize,
        key: u8,
    },
    Repair {
        v: usize,
        pid: i64,
    },
    Probe {
        v: usize,
    },
    Rescan,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct World {
    pub now: u64,
    pub vassals: Vec<VassalW>,
    /// The Emperor's vassals[] order (a crash-respawn moves one to the end).
    pub order: Vec<usize>,
    pub nodes: Vec<NodeW>,
    /// A read of [emperor, fastrouter] in flight.
    pub reads: [bool; 2],
    pub answers: Vec<Answer>,
    /// A change the Emperor's own periodic scan will pick up by then.
    pub scan_due: Option<u64>,
    pub faults_used: u8,
    pub any_fault: bool,
    /// Keys whose liveness a fault took away on its own: K is not asserted.
    pub exempt: u8,
    pub next_pid: i64,
    pub foreign_node: bool,
    pub uogr: bool,
    pub busy: bool,
    pub accept_within_ms: u64,
    pub events_between_reads: bool,
    pub announce_first: bool,
    /// A slow read may stay in flight across the next time jump.
    pub slow: [bool; 2],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Src {
    Emperor,
    Fastrouter,
}

/// One thing that can happen next.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Move {
    /// A stats read returns. For the Emperor, its scan follows; `wedge`
    /// decides a second reload request landing mid-reload.
    Read {
        src: Src,
        wedge: bool,
    },
    /// The Emperor's periodic scan.
    Scan {
        wedge: bool,
    },
    /// Deliver answer `i` (`ok == false`: the touch fails; a fault).
    Answer {
        i: usize,
        ok: bool,
    },
    Accept(usize),
    Announce(usize),
    Exit(usize),
    SessionsEnd(usize),
    /// handle_timeout at the current instant (the engine's timer is due).
    Timeout,
    /// Time jumps forward to `to` (mono ms).
    Advance {
        to: u64,
    },
    Fault(Fault),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    Crash(usize),
    CrashLoop(usize),
    MissingAnnounce(usize, RepairOutcome),
    ForeignTouch(usize),
    ConfigRemoved(usize),
    ReadFail(Src),
    InvalidSnapshot(Src),
    SlowRead(Src),
    BrokenApp(usize),
    Overflow,
    Stop,
    FastrouterRestart,
}

impl World {
    pub fn wall(&self) -> i64 {
        WALL0 + ((self.now - MONO0) / 1000) as i64
    }

    pub fn now(&self) -> Now {
        Now {
            mono_ms: self.now,
            wall_s: self.wall(),
        }
    }

    fn node_fresh(&self, n: &NodeW) -> bool {
        !n.death_mark && self.wall() - n.last_check <= 17
    }

    /// Ground truth: how many nodes per key take requests and are served.
    pub fn live(&self, key: u8) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.key == key && self.node_fresh(n))
            .filter(|n| match n.owner {
                None => true,
                Some(v) => {
                    let w = &self.vassals[v];
                    !w.wedged
                        && !w.broken
                        && matches!(w.proc_, Proc::Serving | Proc::Accepted { .. })
                        && w.rec
                            .as_ref()
                            .is_some_and(|r| r.accepting == 1 && r.cursed == 0)
                }
            })
            .count()
    }

    pub fn emperor_snapshot(&self) -> EmperorSnapshot {
        let vassals = self
            .order
            .iter()
            .filter_map(|&i| {
                self.vassals[i].rec.as_ref().map(|r| VassalStats {
                    id: vassal_name(i),
                    pid: r.pid,
                    last_mod: r.last_mod,
                    ready: r.ready,
                    accepting: r.accepting,
                    last_accepting: r.last_accepting,
                    respawns: r.respawns,
                    cursed: r.cursed,
                    loyal: 1,
                    born: r.born,
                    first_run: r.first_run,
                    last_run: r.last_run,
                })
            })
            .collect();
        let blacklist = (0..self.vassals.len())
            .filter_map(|i| {
                self.vassals[i].blacklist_attempt.map(|a| BlacklistEntry {
                    id: vassal_name(i),
                    throttle_level: 1 + 1000 * a,
                    attempt: a,
                })
            })
            .collect();
        EmperorSnapshot {
            pid: 1,
            version: String::new(),
            emperor: vec![EMPEROR_DIR.to_string()],
            vassals,
            blacklist,
        }
    }

    pub fn fastrouter_snapshot(&self) -> FastrouterSnapshot {
        let mut subscriptions = Vec::new();
        for (k, key) in KEYS.iter().enumerate() {
            let nodes: Vec<Node> = self
                .nodes
                .iter()
                .filter(|n| n.key as usize == k)
                .map(|n| Node {
                    name: n.owner.map_or(FOREIGN_NODE.to_string(), socket_name),
                    last_check: n.last_check,
                    death_mark: n.death_mark as i64,
                    refs: n.busy as i64,
                    ..Node::default()
                })
                .collect();
            if !nodes.is_empty() {
                subscriptions.push(Subscription {
                    key: key.to_string(),
                    nodes,
                });
            }
        }
        FastrouterSnapshot {
            router_pids: Vec::new(),
            pid: 2,
            version: String::new(),
            subscriptions,
        }
    }

    /// The vassal announces: its nodes are (re-)added, fresh.
    fn announce(&mut self, v: usize) {
        let wall = self.wall();
        for key in 0..2u8 {
            if self.vassals[v].keys & (1 << key) == 0 {
                continue;
            }
            match self
                .nodes
                .iter_mut()
                .find(|n| n.key == key && n.owner == Some(v))
            {
                Some(n) => {
                    n.last_check = wall;
                    n.death_mark = false;
                    n.busy = false;
                }
                None => self.nodes.push(NodeW {
                    key,
                    owner: Some(v),
                    last_check: wall,
                    death_mark: false,
                    busy: false,
                    marked_at: 0,
                }),
            }
        }
    }

    /// An unsubscribe reaches the fastrouter: removed, or death-marked while
    /// sessions are in flight.
    fn unsubscribe(&mut self, v: usize, key: Option<u8>, busy: bool) {
        let now = self.now;
        self.nodes.retain_mut(|n| {
            if n.owner != Some(v) || key.is_some_and(|k| k != n.key) {
                return true;
            }
            if busy {
                n.death_mark = true;
                n.busy = true;
                n.marked_at = now;
                true
            } else {
                false
            }
        });
    }

    fn can_announce(&self, v: usize) -> bool {
        let w = &self.vassals[v];
        w.proc_ == Proc::Serving && w.blocked.is_none() && !w.wedged
    }

    fn config_changed(&mut self) {
        if self.scan_due.is_none() {
            self.scan_due = Some(self.now + EMPEROR_FREQ_MS);
        }
    }

    /// Would a scan now send a second reload to a vassal mid-reload?
    fn scan_could_wedge(&self) -> bool {
        self.vassals.iter().any(|w| {
            w.exists
                && matches!(w.proc_, Proc::Reloading { .. } | Proc::Starting { .. })
                && w.rec
                    .as_ref()
                    .is_some_and(|r| r.cursed == 0 && w.mtime > r.last_mod)
        })
    }

    /// The Emperor's scan (`uwsgi_imperial_monitor_directory`).
    fn scan(&mut self, wedge: bool) {
        let (now, wall) = (self.now, self.wall());
        let mut begun = Vec::new();
        let mut added = Vec::new();
        for (i, w) in self.vassals.iter_mut().enumerate() {
            let Some(r) = w.rec.as_mut() else {
                // A blacklisted vassal whose config changed is started again
                // (`emperor_add`, once its throttle expires): a new record.
                if w.exists && w.blacklist_attempt.is_some() && w.mtime > w.gone_last_mod {
                    added.push(i);
                }
                continue;
            };
            if r.cursed != 0 {
                continue;
            }
            if !w.exists {
                r.cursed = wall;
                w.proc_ = Proc::Stopping { at: now };
                continue;
            }
            if w.mtime <= r.last_mod {
                continue;
            }
            r.respawns += 1;
            r.last_mod = w.mtime;
            r.last_run = wall;
            r.ready = 0;
            r.accepting = 0;
            w.blocked = None;
            w.announced_early = false;
            w.announce_again = None;
            match w.proc_ {
                // A wedged master is still "reloading": it ignores the
                // request (until worker-reload-mercy, past this horizon).
                Proc::Serving | Proc::Accepted { .. } if w.wedged => {}
                Proc::Serving | Proc::Accepted { .. } => {
                    w.proc_ = Proc::Reloading { since: now };
                    w.new_gen = true;
                    begun.push(i);
                }
                // Reaches the old master (ignored: one reload) or the new
                // one in the lost-SIGHUP window (docs/UWSGI.md §12).
                Proc::Reloading { .. } | Proc::Starting { .. } => {
                    if wedge {
                        w.wedged = true;
                        w.wedge_unseen |= matches!(w.proc_, Proc::Starting { .. })
                            && w.foreign_mtime
                            && r.respawns == 1;
                    }
                }
                Proc::Stopping { .. } | Proc::Gone => {}
            }
        }
        if self.uogr {
            for v in begun {
                self.unsubscribe(v, None, self.busy);
            }
        }
        for v in added {
            let pid = self.next_pid;
            self.next_pid += 1;
            let w = &mut self.vassals[v];
            w.rec = Some(Rec {
                pid,
                last_mod: w.mtime,
                ready: 0,
                accepting: 0,
                last_accepting: 0,
                respawns: 0,
                cursed: 0,
                born: w.mtime,
                first_run: wall,
                last_run: wall,
            });
            w.proc_ = Proc::Starting { since: now };
            w.new_gen = true;
            w.blocked = None;
            w.announced_early = false;
            self.order.push(v);
        }
        self.scan_due = None;
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
fn without_field<'a>(text: &'a str, field: &str) -> std::borrow::Cow<'a, str> {
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

    fn fault_ok(&self, kind: FaultKind) -> bool {
        self.w.faults_used < self.max_faults && self.cfg_faults.contains(&kind)
    }

    /// Everything that can happen next. Empty once the engine finished.
    pub fn moves(&self) -> Vec<Move> {
        let mut m = Vec::new();
        if self.finished() {
            return m;
        }
        let w = &self.w;
        let wedges: &[bool] = if w.scan_could_wedge() {
            &[false, true]
        } else {
            &[false]
        };
        for (i, src) in [Src::Emperor, Src::Fastrouter].into_iter().enumerate() {
            if w.reads[i] {
                if src == Src::Emperor {
                    for &wedge in wedges {
                        m.push(Move::Read { src, wedge });
                    }
                } else {
                    m.push(Move::Read { src, wedge: false });
                }
                if self.fault_ok(FaultKind::ReadFail) {
                    m.push(Move::Fault(Fault::ReadFail(src)));
                }
                if self.fault_ok(FaultKind::InvalidSnapshot) {
                    m.push(Move::Fault(Fault::InvalidSnapshot(src)));
                }
                if !w.slow[i] && self.fault_ok(FaultKind::SlowRead) {
                    m.push(Move::Fault(Fault::SlowRead(src)));
                }
            }
        }
        for (i, a) in w.answers.iter().enumerate() {
            // Identical answers are interchangeable: offer the first only.
            if w.answers[..i].contains(a) {
                continue;
            }
            m.push(Move::Answer { i, ok: true });
            if matches!(a, Answer::Touch { .. }) && self.fault_ok(FaultKind::TouchError) {
                m.push(Move::Answer { i, ok: false });
            }
        }
        let quiet = w.events_between_reads || !w.reads.iter().any(|r| *r);
        if w.scan_due.is_some() && quiet {
            for &wedge in wedges {
                m.push(Move::Scan { wedge });
            }
        }
        for (v, vw) in w.vassals.iter().enumerate().filter(|_| quiet) {
            match vw.proc_ {
                Proc::Reloading { since } | Proc::Starting { since }
                    if w.now >= since + ACCEPT_AFTER_MS =>
                {
                    m.push(Move::Accept(v));
                    if w.announce_first && !vw.announced_early && vw.blocked.is_none() {
                        m.push(Move::Announce(v));
                    }
                }
                Proc::Accepted { .. } if vw.blocked.is_none() => m.push(Move::Announce(v)),
                Proc::Stopping { .. } => m.push(Move::Exit(v)),
                _ => {}
            }
        }
        for (i, n) in w.nodes.iter().enumerate().filter(|_| quiet) {
            if n.busy {
                m.push(Move::SessionsEnd(i));
            }
        }
        match self.e.poll_timeout() {
            Some(t) if t <= w.now => m.push(Move::Timeout),
            Some(t) => {
                if let Some(to) = self.advance_to(t) {
                    m.push(Move::Advance { to });
                }
            }
            None => {}
        }
        if self.w.faults_used < self.max_faults {
            self.fault_moves(&mut m);
        }
        m
    }

    /// Where time may jump, if it may: no read or answer outstanding, and no
    /// world event past its latest time.
    fn advance_to(&self, engine_t: u64) -> Option<u64> {
        let w = &self.w;
        if w.reads.iter().zip(w.slow).any(|(r, slow)| *r && !slow) || !w.answers.is_empty() {
            return None;
        }
        let mut to = engine_t;
        let mut latest = u64::MAX;
        if let Some(d) = w.scan_due {
            latest = latest.min(d);
        }
        for vw in &w.vassals {
            match vw.proc_ {
                Proc::Reloading { since } | Proc::Starting { since } => {
                    if w.now < since + ACCEPT_AFTER_MS {
                        to = to.min(since + ACCEPT_AFTER_MS);
                    }
                    latest = latest.min(since + w.accept_within_ms);
                }
                Proc::Accepted { at } if vw.blocked.is_none() => {
                    latest = latest.min(at + ANNOUNCE_WITHIN_MS)
                }
                Proc::Stopping { at } => latest = latest.min(at + EXIT_WITHIN_MS),
                _ => {}
            }
        }
        for n in &w.nodes {
            if n.busy {
                latest = latest.min(n.marked_at + EXIT_WITHIN_MS);
            }
        }
        let to = to.min(latest);
        (to > w.now).then_some(to)
    }

    fn fault_moves(&self, m: &mut Vec<Move>) {
        let w = &self.w;
        for (v, vw) in w.vassals.iter().enumerate() {
            let running =
                vw.rec.is_some() && !matches!(vw.proc_, Proc::Gone | Proc::Stopping { .. });
            if running && self.fault_ok(FaultKind::Crash) {
                m.push(Move::Fault(Fault::Crash(v)));
            }
            if running && self.fault_ok(FaultKind::CrashLoop) {
                m.push(Move::Fault(Fault::CrashLoop(v)));
            }
            if vw.blocked.is_none()
                && matches!(vw.proc_, Proc::Reloading { .. } | Proc::Accepted { .. })
                && self.fault_ok(FaultKind::MissingAnnounce)
            {
                for o in [
                    RepairOutcome::Fixes,
                    RepairOutcome::DoesNotHelp,
                    RepairOutcome::NoFifo,
                ] {
                    m.push(Move::Fault(Fault::MissingAnnounce(v, o)));
                }
            }
            if vw.exists && self.fault_ok(FaultKind::ForeignTouch) {
                m.push(Move::Fault(Fault::ForeignTouch(v)));
            }
            if !vw.broken
                && matches!(vw.proc_, Proc::Reloading { .. })
                && self.fault_ok(FaultKind::BrokenApp)
            {
                m.push(Move::Fault(Fault::BrokenApp(v)));
            }
            if vw.exists && self.fault_ok(FaultKind::ConfigRemoved) {
                m.push(Move::Fault(Fault::ConfigRemoved(v)));
            }
        }
        if self.fault_ok(FaultKind::Overflow) {
            m.push(Move::Fault(Fault::Overflow));
        }
        if self.fault_ok(FaultKind::Stop) {
            m.push(Move::Fault(Fault::Stop));
        }
        if self.fault_ok(FaultKind::FastrouterRestart) {
            m.push(Move::Fault(Fault::FastrouterRestart));
        }
    }

    fn note(&mut self, s: impl FnOnce() -> String) {
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

    /// Applies the world side of a move; returns the engine input, if any.
    fn world_step(&mut self, mv: &Move) -> Result<Option<Input>, String> {
        let w = &mut self.w;
        let (now, wall) = (w.now, w.wall());
        Ok(match mv {
            Move::Read {
                src: Src::Emperor,
                wedge,
            } => {
                w.reads[0] = false;
                let snap = w.emperor_snapshot();
                // The answer is written before the scan the connection
                // triggers (docs/UWSGI.md §1).
                w.scan(*wedge);
                Some(Input::Emperor(snap))
            }
            Move::Read {
                src: Src::Fastrouter,
                ..
            } => {
                w.reads[1] = false;
                Some(Input::Fastrouter(w.fastrouter_snapshot()))
            }
            Move::Scan { wedge } => {
                w.scan(*wedge);
                None
            }
            Move::Answer { i, ok } => {
                let a = w.answers.remove(*i);
                match a {
                    Answer::Touch { v, mtime } => {
                        if *ok {
                            w.vassals[v].mtime = mtime;
                            w.vassals[v].foreign_mtime = false;
                            w.config_changed();
                            w.answers.push(Answer::Changed { v, mtime });
                            Some(Input::Touched {
                                vassal: vassal_name(v),
                                error: None,
                            })
                        } else {
                            self.fault(None, 0);
                            Some(Input::Touched {
                                vassal: vassal_name(v),
                                error: Some("EPERM: operation not permitted".into()),
                            })
                        }
                    }
                    Answer::Changed { v, mtime } => Some(Input::Config(ConfigEvent::Changed {
                        name: vassal_name(v),
                        mtime: Some(mtime),
                    })),
                    Answer::Removed { v } => Some(Input::Config(ConfigEvent::Removed {
                        name: vassal_name(v),
                    })),
                    Answer::Unsubscribe { v, key } => {
                        let busy = w.busy;
                        w.unsubscribe(v, Some(key), busy);
                        None
                    }
                    Answer::Subscribe { v, key } => {
                        if let Some(n) = w
                            .nodes
                            .iter_mut()
                            .find(|n| n.key == key && n.owner == Some(v))
                        {
                            n.death_mark = false;
                            n.busy = false;
                            n.last_check = wall;
                        } else {
                            w.nodes.push(NodeW {
                                key,
                                owner: Some(v),
                                last_check: wall,
                                death_mark: false,
                                busy: false,
                                marked_at: 0,
                            });
                        }
                        None
                    }
                    Answer::Repair { v, pid } => {
                        let vw = &mut w.vassals[v];
                        let result = match vw.blocked {
                            Some(RepairOutcome::NoFifo) => {
                                Err("no master-fifo in its config".to_string())
                            }
                            Some(RepairOutcome::Fixes) => {
                                vw.blocked = None;
                                Ok(format!("/run/uwsgi/app_{:02}.fifo", v + 1))
                            }
                            _ => Ok(format!("/run/uwsgi/app_{:02}.fifo", v + 1)),
                        };
                        let _ = pid;
                        Some(Input::Repaired {
                            vassal: vassal_name(v),
                            result,
                        })
                    }
                    Answer::Probe { v } => {
                        let vw = &w.vassals[v];
                        let up = matches!(vw.proc_, Proc::Serving | Proc::Accepted { .. })
                            && vw.rec.as_ref().is_some_and(|r| r.accepting == 1);
                        let result = if !up {
                            Err("connect: connection refused".to_string())
                        } else if vw.broken {
                            Err("HTTP 500 Internal Server Error".to_string())
                        } else {
                            Ok("HTTP 200 OK".to_string())
                        };
                        Some(Input::Probed {
                            vassal: vassal_name(v),
                            result,
                        })
                    }
                    Answer::Rescan => Some(Input::Config(ConfigEvent::Rescanned(
                        w.vassals
                            .iter()
                            .enumerate()
                            .filter(|(_, vw)| vw.exists)
                            .map(|(i, vw)| ConfigFile {
                                name: vassal_name(i),
                                mtime: vw.mtime,
                            })
                            .collect(),
                    ))),
                }
            }
            Move::Accept(v) => {
                let vw = &mut w.vassals[*v];
                if let Some(r) = vw.rec.as_mut() {
                    r.accepting = 1;
                    r.last_accepting = wall;
                    if matches!(vw.proc_, Proc::Starting { .. }) {
                        // A fresh exec sends ready too (docs/UWSGI.md §5.2), and
                        // the first request makes it loyal: off the blacklist.
                        r.ready = 1;
                        vw.blacklist_attempt = None;
                    }
                }
                if vw.announced_early {
                    vw.announced_early = false;
                    vw.proc_ = Proc::Serving;
                    if vw.new_gen {
                        vw.reloaded = true;
                        vw.new_gen = false;
                    }
                } else {
                    vw.proc_ = Proc::Accepted { at: now };
                }
                None
            }
            Move::Announce(v) => {
                let v = *v;
                w.announce(v);
                let vw = &mut w.vassals[v];
                if matches!(vw.proc_, Proc::Reloading { .. } | Proc::Starting { .. }) {
                    // Announced before accepting (docs/UWSGI.md §6.5).
                    vw.announced_early = true;
                    return Ok(None);
                }
                vw.announce_again = Some(wall + 1);
                vw.proc_ = Proc::Serving;
                if vw.new_gen {
                    vw.reloaded = true;
                    vw.new_gen = false;
                }
                None
            }
            Move::Exit(v) => {
                let v = *v;
                w.unsubscribe(v, None, false);
                let vw = &mut w.vassals[v];
                vw.rec = None;
                vw.proc_ = Proc::Gone;
                w.order.retain(|i| *i != v);
                None
            }
            Move::SessionsEnd(i) => {
                w.nodes.remove(*i);
                None
            }
            Move::Timeout => None,
            Move::Advance { to } => {
                let old_wall = w.wall();
                w.now = *to;
                let new_wall = w.wall();
                for s in old_wall + 1..=new_wall {
                    for v in 0..w.vassals.len() {
                        let again = w.vassals[v].announce_again == Some(s);
                        if again {
                            w.vassals[v].announce_again = None;
                        }
                        if ((s + v as i64) % ANNOUNCE_EVERY_S == 0 || again) && w.can_announce(v) {
                            let t = w.now;
                            w.now = MONO0 + ((s - WALL0) * 1000) as u64;
                            w.announce(v);
                            w.now = t;
                        }
                    }
                    if w.foreign_node && (s + 4) % ANNOUNCE_EVERY_S == 0 {
                        match w.nodes.iter_mut().find(|n| n.owner.is_none()) {
                            Some(n) => n.last_check = s,
                            None => w.nodes.push(NodeW {
                                key: 0,
                                owner: None,
                                last_check: s,
                                death_mark: false,
                                busy: false,
                                marked_at: 0,
                            }),
                        }
                    }
                }
                w.slow = [false; 2];
                if w.now > self.limit_ms {
                    return Err(format!(
                        "no Finish after {} ms of simulated time",
                        w.now - MONO0
                    ));
                }
                None
            }
            Move::Fault(f) => self.inject(f),
        })
    }

    /// Counts a fault; `exempt` names the keys whose liveness it takes away
    /// on its own.
    fn fault(&mut self, v: Option<usize>, exempt_all: u8) {
        self.w.faults_used += 1;
        self.w.any_fault = true;
        if let Some(v) = v {
            self.w.exempt |= self.w.vassals[v].keys;
        }
        self.w.exempt |= exempt_all;
    }

    fn inject(&mut self, f: &Fault) -> Option<Input> {
        let (now, wall) = (self.w.now, self.w.wall());
        match f {
            Fault::Crash(v) => {
                let v = *v;
                self.fault(Some(v), 0);
                let w = &mut self.w;
                let pid = w.next_pid;
                w.next_pid += 1;
                let vw = &mut w.vassals[v];
                let last_mod = vw.rec.as_ref().map_or(vw.mtime, |r| r.last_mod);
                vw.rec = Some(Rec {
                    pid,
                    last_mod,
                    ready: 0,
                    accepting: 0,
                    last_accepting: 0,
                    respawns: 0,
                    cursed: 0,
                    born: last_mod,
                    first_run: wall,
                    last_run: wall,
                });
                vw.proc_ = Proc::Starting { since: now };
                vw.new_gen = true;
                vw.blocked = None;
                vw.announced_early = false;
                vw.announce_again = None;
                w.order.retain(|i| *i != v);
                w.order.push(v);
                // The fastrouter keeps the node (no unsubscribe on a crash).
                None
            }
            Fault::CrashLoop(v) => {
                let v = *v;
                self.fault(Some(v), 0);
                let w = &mut self.w;
                let vw = &mut w.vassals[v];
                // Its config stays broken: it never comes back.
                vw.gone_last_mod = i64::MAX;
                vw.rec = None;
                vw.proc_ = Proc::Gone;
                vw.blacklist_attempt = Some(vw.blacklist_attempt.map_or(0, |a| a + 1));
                w.order.retain(|i| *i != v);
                None
            }
            Fault::MissingAnnounce(v, outcome) => {
                // Not exempt: the engine took it out of rotation; it must
                // not take out another because this one stays out.
                self.fault(None, 0);
                self.w.vassals[*v].blocked = Some(*outcome);
                None
            }
            Fault::ForeignTouch(v) => {
                let v = *v;
                self.fault(Some(v), 0);
                let w = &mut self.w;
                let m = wall.max(w.vassals[v].mtime + 1);
                w.vassals[v].mtime = m;
                w.vassals[v].foreign_mtime = true;
                w.config_changed();
                w.answers.push(Answer::Changed { v, mtime: m });
                None
            }
            Fault::ConfigRemoved(v) => {
                let v = *v;
                self.fault(Some(v), 0);
                let w = &mut self.w;
                w.vassals[v].exists = false;
                w.config_changed();
                w.answers.push(Answer::Removed { v });
                None
            }
            Fault::ReadFail(src) | Fault::InvalidSnapshot(src) => {
                self.fault(None, 0);
                let i = (*src == Src::Fastrouter) as usize;
                self.w.reads[i] = false;
                if *src == Src::Emperor {
                    // The connection still woke the Emperor.
                    self.w.scan(false);
                }
                let source = if i == 0 {
                    StatsSource::Emperor
                } else {
                    StatsSource::Fastrouter
                };
                let error = match f {
                    Fault::ReadFail(_) => "connect: connection refused (ECONNREFUSED)".to_string(),
                    _ => {
                        "expected uWSGI stats JSON: EOF while parsing an object at line 1 column 57"
                            .to_string()
                    }
                };
                Some(Input::ReadFailed { source, error })
            }
            Fault::BrokenApp(v) => {
                // Requests to it fail: its keys are exempt from K.
                self.fault(Some(*v), 0);
                self.w.vassals[*v].broken = true;
                None
            }
            Fault::SlowRead(src) => {
                self.fault(None, 0);
                self.w.slow[(*src == Src::Fastrouter) as usize] = true;
                None
            }
            Fault::Overflow => {
                self.fault(None, 0);
                Some(Input::Config(ConfigEvent::Overflow))
            }
            Fault::Stop => {
                self.fault(None, 0);
                Some(Input::Stop)
            }
            Fault::FastrouterRestart => {
                self.fault(None, 3);
                self.w.nodes.clear();
                None
            }
        }
    }

    /// Takes the engine's actions, checking what every action must satisfy.
    pub fn drain(&mut self) -> Result<(), String> {
        while let Some(a) = self.e.poll_action() {
            if self.outcome.is_some() {
                return Err(format!("an action after Finish: {a:?}"));
            }
            match a {
                Action::ReadStats(src) => {
                    let i = (src == StatsSource::Fastrouter) as usize;
                    if self.w.reads[i] {
                        return Err(format!("a second ReadStats({src}) while one is in flight"));
                    }
                    self.w.reads[i] = true;
                }
                Action::Touch { vassal, mtime } => {
                    self.note(|| format!("    <- Touch {vassal} {}", mtime - WALL0));
                    let v = index(&vassal)?;
                    let vw = &mut self.w.vassals[v];
                    vw.touches += 1;
                    if vw.touches > 1 {
                        return Err(format!("{vassal} was sent a second Action::Touch"));
                    }
                    self.w.answers.push(Answer::Touch { v, mtime });
                }
                Action::Unsubscribe {
                    vassal, key, node, ..
                } => {
                    self.note(|| format!("    <- Unsubscribe {vassal} {key}"));
                    let v = index(&vassal)?;
                    let k = key_index(&key)?;
                    if node != socket_name(v) {
                        return Err(format!("Unsubscribe of {node} for {vassal}: not its node"));
                    }
                    self.w.answers.push(Answer::Unsubscribe { v, key: k });
                }
                Action::Subscribe {
                    vassal, key, node, ..
                } => {
                    self.note(|| format!("    <- Subscribe {vassal} {key}"));
                    let v = index(&vassal)?;
                    let k = key_index(&key)?;
                    if node != socket_name(v) {
                        return Err(format!("Subscribe of {node} for {vassal}: not its node"));
                    }
                    if self.w.vassals[v].keys & (1 << k) == 0 {
                        return Err(format!(
                            "Subscribe of {vassal} under {key}, which it never had"
                        ));
                    }
                    self.w.answers.push(Answer::Subscribe { v, key: k });
                }
                Action::Repair { vassal, pid } => {
                    self.note(|| format!("    <- Repair {vassal} pid {pid}"));
                    let v = index(&vassal)?;
                    if let Some(r) = &self.w.vassals[v].rec {
                        if r.pid != pid {
                            return Err(format!(
                                "Repair of {vassal} names pid {pid}, its master is {}",
                                r.pid
                            ));
                        }
                    }
                    self.w.answers.push(Answer::Repair { v, pid });
                }
                Action::RescanConfigs => self.w.answers.push(Answer::Rescan),
                Action::Probe { vassal, node, .. } => {
                    self.note(|| format!("    <- Probe {vassal} via {node}"));
                    let v = index(&vassal)?;
                    if node != socket_name(v) {
                        return Err(format!("Probe of {vassal} sent to {node}: not its node"));
                    }
                    self.w.answers.push(Answer::Probe { v });
                }
                Action::Report(r) => self.note(|| format!("    <- {:?}", r.event)),
                Action::Finish(o) => {
                    self.note(|| format!("    <- Finish {:?} {}", o.status, o.summary));
                    self.check_outcome(&o)?;
                    self.outcome = Some(o);
                    self.check_silent_after_finish()?;
                }
                #[allow(unreachable_patterns)]
                other => {
                    return Err(format!(
                        "an action the simulated driver does not know: {other:?}"
                    ))
                }
            }
        }
        Ok(())
    }

    /// Properties of every step.
    fn check_step(&self) -> Result<(), String> {
        for key in 0..2u8 {
            if self.guarded & (1 << key) == 0 || self.w.exempt & (1 << key) != 0 {
                continue;
            }
            let live = self.w.live(key);
            if live < self.k {
                return Err(format!(
                    "key {} has {live} live, below K = {} (no fault of its own)",
                    KEYS[key as usize], self.k
                ));
            }
        }
        if !self.finished() && self.e.poll_timeout().is_none() {
            return Err("not finished, and poll_timeout() is None: deadlock".into());
        }
        if self.finished() && self.e.poll_timeout().is_some() {
            return Err("finished, but poll_timeout() is still Some".into());
        }
        Ok(())
    }

    /// Nothing comes out of a finished engine, whatever it is fed.
    fn check_silent_after_finish(&self) -> Result<(), String> {
        let mut e = self.e.clone();
        let mut now = self.w.now();
        let inputs = [
            Input::Stop,
            Input::Emperor(self.w.emperor_snapshot()),
            Input::Fastrouter(self.w.fastrouter_snapshot()),
            Input::Config(ConfigEvent::Overflow),
            Input::Touched {
                vassal: vassal_name(0),
                error: Some("late".into()),
            },
        ];
        for input in inputs {
            now.mono_ms += 60_000;
            now.wall_s += 60;
            e.handle_timeout(now);
            e.handle(now, input);
            if let Some(a) = e.poll_action() {
                return Err(format!("an action after Finish: {a:?}"));
            }
            if e.poll_timeout().is_some() {
                return Err("poll_timeout() is Some after Finish".into());
            }
        }
        Ok(())
    }

    fn check_outcome(&self, o: &Outcome) -> Result<(), String> {
        let n = self.w.vassals.len();
        let mut seen = vec![0u8; n];
        for name in &o.reloaded {
            let v = index(name)?;
            seen[v] += 1;
            let vw = &self.w.vassals[v];
            if !vw.reloaded {
                return Err(format!(
                    "{name} reported reloaded, but no reload of it completed"
                ));
            }
            if vw.broken && self.probe {
                return Err(format!(
                    "{name} reported reloaded, but its app answers 500 and --probe is on"
                ));
            }
            if vw.wedged && !vw.wedge_unseen {
                return Err(format!(
                    "{name} reported reloaded, but a second reload wedged it (docs/UWSGI.md §12)"
                ));
            }
        }
        for (name, _reason, _detail) in &o.failed {
            seen[index(name)?] += 1;
        }
        for (name, why) in &o.untouched {
            let v = index(name)?;
            seen[v] += 1;
            if why.trim().is_empty() {
                return Err(format!("{name} untouched without a reason"));
            }
            if self.w.vassals[v].touches > 0 {
                return Err(format!("{name} reported untouched, but it was touched"));
            }
        }
        if let Some(v) = seen.iter().position(|c| *c != 1) {
            return Err(format!(
                "{} is listed {} times in the outcome (reloaded, failed, untouched)",
                vassal_name(v),
                seen[v]
            ));
        }
        match &o.status {
            Status::Completed => {
                if !o.failed.is_empty() {
                    return Err("Completed with failures".into());
                }
            }
            Status::Precondition(_) => {
                if self.w.vassals.iter().any(|v| v.touches > 0) {
                    return Err("a precondition failure after a touch".into());
                }
            }
            _ => {}
        }
        if !self.w.any_fault && !matches!(o.status, Status::Precondition(_)) {
            for (key, min) in &o.min_live {
                let low = o.lowest_live.get(key).copied().unwrap_or(0);
                let k = key_index(key)?;
                if self.guarded & (1 << k) != 0 && low < *min {
                    return Err(format!(
                        "no fault, yet the engine's lowest live for {key} was {low} < {min}"
                    ));
                }
            }
            if o.status != Status::Completed || o.reloaded.len() != n {
                return Err(format!(
                    "no fault, yet not every vassal was reloaded: {:?}: {} (failed {:?}, untouched {:?})",
                    o.status, o.summary, o.failed, o.untouched
                ));
            }
        }
        Ok(())
    }
}

fn index(name: &str) -> Result<usize, String> {
    name.strip_prefix("app_")
        .and_then(|s| s.strip_suffix(".ini"))
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|i| *i >= 1)
        .map(|i| i - 1)
        .ok_or_else(|| format!("an action names {name:?}, not a vassal of this run"))
}

fn key_index(key: &str) -> Result<u8, String> {
    KEYS.iter()
        .position(|k| *k == key)
        .map(|i| i as u8)
        .ok_or_else(|| format!("an action names key {key:?}, not a key of this run"))
}

fn short_input(i: &Input) -> String {
    match i {
        Input::Emperor(s) => format!(
            "Emperor[{}]",
            s.vassals
                .iter()
                .map(|v| format!(
                    "{} pid{} lm{} acc{}@{} resp{}{}",
                    v.id,
                    v.pid,
                    v.last_mod - WALL0,
                    v.accepting,
                    v.last_accepting - WALL0,
                    v.respawns,
                    if v.cursed != 0 { " cursed" } else { "" }
                ))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        Input::Fastrouter(s) => format!(
            "Fastrouter[{}]",
            s.nodes()
                .map(|(k, n)| format!(
                    "{}:{} lc{} dm{} ref{}",
                    &k[..3],
                    n.name,
                    n.last_check - WALL0,
                    n.death_mark,
                    n.refs
                ))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        other => format!("{other:?}"),
    }
}
