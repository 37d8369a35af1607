//! What a run is: the fleet, its setup (timings, keys, addresses, the
//! state it starts in), the faults it may suffer, and the engine settings
//! built from it ([`Config::settings`], the only place they are built).

use super::*;

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
    /// It never announces after its reload; a FIFO repair fixes
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
    /// answers 500 . Only `--probe` tells.
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
    /// the accepting hook writing `S`); its next generation subscribes.
    FirstUnsubscribed,
    /// The first vassal's node is stale (no announce for 40 s) but still
    /// listed with death_mark 0; its next generation announces.
    FirstStale,
    /// The first vassal crash-loops (blacklisted, no record, no node) and
    /// its config stays broken: a touch does not bring it back. It is not
    /// evidence against the release: the healthy vassals are reloaded and
    /// it is reported failed.
    FirstCrashLooping,
    /// The first vassal crashed and was restarted this many seconds before
    /// the rollout: a new record (new pid, `accepting = 0`, `last_run` then),
    /// its app still importing (`Config::accept_after_ms`), its old node
    /// still listed. It must not be touched until it accepts.
    FirstStarting(u8),
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
    /// A reload or a crash-restart takes from `accept_after_ms` up to
    /// `accept_within_ms` (its app import) before worker 1 accepts.
    pub accept_after_ms: u64,
    pub accept_within_ms: u64,
    /// It accepts only at either end of that window (a long import
    /// explored at its two extremes, not at every tick in between).
    pub accept_at_ends: bool,
    /// It announces up to this long after accepting (unless blocked).
    pub announce_late_ms: u64,
    /// `lazy-apps` (+ start-unsubscribed): the first announce after
    /// accepting waits for the vassal's next subscribe-freq tick.
    pub lazy_apps: bool,
    /// Each vassal's subscribe-freq in seconds: vassal i has
    /// `subscribe_freq_s[i % len]`.
    pub subscribe_freq_s: Vec<i64>,
    /// Every vassal announces in the same second (a fleet started at
    /// once); otherwise vassal i announces `i` seconds after vassal 0.
    pub in_phase: bool,
    /// The fastrouter's subscription-tolerance: older nodes are expired.
    pub fr_tolerance_s: i64,
    /// The user passed `--subscription-tolerance` (its real value).
    pub tolerance_flag: bool,
    /// The subscription server is known: the engine may unsubscribe the
    /// node a dead vassal left.
    pub can_unsubscribe: bool,
    /// Vassal 0 subscribes two addresses under each of its keys.
    pub two_addrs: bool,
    /// A `--timeout` long enough for slow starts and long subscribe-freqs
    /// (see `timeout_ms`).
    pub long_timeout: bool,
    /// Vassal and Emperor events may happen while a stats read is in
    /// flight (between the two reads of one tick). Off, each tick's reads
    /// see the world between events (still in either order); the Emperor's
    /// scan after its read changes it in between.
    pub events_between_reads: bool,
    /// The new generation may announce before worker 1 accepts (no
    /// start-unsubscribed).
    pub announce_first: bool,
    pub initial: Initial,
    /// `--max-parallel`, `--canary`, `--min-ready`.
    pub max_parallel: usize,
    pub canary: usize,
    pub min_ready_ms: u64,
    /// `--probe /health`.
    pub probe: bool,
    /// The `start-unsubscribed` + writefifo `S` pattern with each vassal's
    /// own log readable (docs/UWSGI.md §9.6.1): the engine watches it, a
    /// lost hook is proven by its line and an arrived `S` by the master's.
    pub log_evidence: bool,
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
            accept_after_ms: 1_000,
            accept_within_ms: 1_000,
            accept_at_ends: false,
            announce_late_ms: 0,
            lazy_apps: false,
            subscribe_freq_s: vec![ANNOUNCE_EVERY_S],
            in_phase: false,
            fr_tolerance_s: 17,
            tolerance_flag: false,
            can_unsubscribe: false,
            two_addrs: false,
            long_timeout: false,
            events_between_reads: false,
            announce_first: false,
            initial: Initial::AllUp,
            max_parallel: usize::MAX,
            canary: 0,
            min_ready_ms: 0,
            probe: false,
            log_evidence: false,
        }
    }

    /// A slow start: every reload and crash-restart accepts `after_s` to
    /// `within_s` seconds after it begins, explored at both ends.
    pub fn slow_start(mut self, after_s: u64, within_s: u64) -> Config {
        self.accept_after_ms = after_s * 1_000;
        self.accept_within_ms = within_s * 1_000;
        self.accept_at_ends = true;
        self.long_timeout = true;
        self
    }

    /// Every vassal's subscribe-freq, and the fastrouter's tolerance.
    pub fn freq(mut self, freq_s: &[i64], fr_tolerance_s: i64) -> Config {
        self.subscribe_freq_s = freq_s.to_vec();
        self.fr_tolerance_s = fr_tolerance_s;
        self.long_timeout = true;
        self
    }

    pub fn freq_of(&self, i: usize) -> i64 {
        self.subscribe_freq_s[i % self.subscribe_freq_s.len()]
    }

    fn max_freq_ms(&self) -> u64 {
        (0..self.n).map(|i| self.freq_of(i)).max().unwrap_or(0) as u64 * 1_000
    }

    /// From one touch to the new generation's announce, at worst.
    fn reload_ms(&self) -> u64 {
        EMPEROR_FREQ_MS
            + self.accept_within_ms
            + self.announce_late_ms
            + if self.lazy_apps {
                self.max_freq_ms()
            } else {
                0
            }
    }

    /// `--timeout`: 8 s for the shortened default setup; with long starts
    /// or long subscribe-freqs, a reload, the engine's announce window
    /// (subscribe-freq + 3 s) and a repair's.
    fn timeout_ms(&self) -> u64 {
        if self.long_timeout {
            self.reload_ms() + 2 * (self.max_freq_ms() + 3_000)
        } else {
            8_000
        }
    }

    /// The engine's settings for this run: built here only, so that new
    /// engine knobs are wired in one place.
    pub fn settings(&self) -> Settings {
        Settings {
            min_live: self.k,
            timeout_ms: self.timeout_ms(),
            check_interval_ms: self.tick_ms,
            max_failures: if self.keep_going { usize::MAX } else { 1 },
            max_parallel: self.max_parallel,
            drain_timeout_ms: self.drain.then_some(2_000),
            repair: true,
            // Every simulated vassal has the start-unsubscribed + writefifo
            // S pattern (the missing-announce fault is its lost hook).
            repairable: (0..self.n).map(vassal_name).collect(),
            allow_downtime: false,
            node_match: NodeMatch::Stem,
            node_tolerance_s: if self.tolerance_flag {
                self.fr_tolerance_s
            } else {
                Settings::default().node_tolerance_s
            },
            node_tolerance_known: self.tolerance_flag,
            // What each vassal's config says (the tool reads it there).
            subscribe_freq_s: (0..self.n)
                .map(|i| (vassal_name(i), self.freq_of(i)))
                .collect(),
            // The other host's node announces every ANNOUNCE_EVERY_S.
            default_subscribe_freq_s: ANNOUNCE_EVERY_S,
            notice_window_ms: 3_000,
            can_unsubscribe: self.can_unsubscribe,
            emperor_dir: Some(EMPEROR_DIR.to_string()),
            stats_outage_ms: 3_000,
            canary: self.canary,
            min_ready_ms: self.min_ready_ms,
            // Fastrouter reads at the tick only: faster reads change when a
            // fact is seen, not which interleavings exist, and would
            // multiply the time steps explored.
            fast_fastrouter_ms: self.tick_ms,
            probe_path: self.probe.then(|| "/health".to_string()),
            watch_hook_log: self.hook_pattern(),
            announce_when_on: self.hook_pattern(),
            ..Settings::default()
        }
    }

    /// The vassals whose log the engine watches: all, with `log_evidence`.
    fn hook_pattern(&self) -> std::collections::BTreeSet<String> {
        (0..self.n)
            .filter(|_| self.log_evidence)
            .map(vassal_name)
            .collect()
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
            let slow = self.reload_ms().saturating_sub(EMPEROR_FREQ_MS + 1_000);
            let initial = match self.initial {
                Initial::FirstStarting(_) => self.accept_within_ms,
                _ => 0,
            };
            20_000 + initial + (12_000 + 2 * slow) * self.n as u64
        }
    }
}
