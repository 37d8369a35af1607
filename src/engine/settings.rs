//! The engine's knobs, already validated by the command line layer.

use std::collections::{BTreeMap, BTreeSet};

/// How an Emperor vassal is matched to its fastrouter node(s).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeMatch {
    /// uwsgi_reload.py's rule: the node name's file stem equals the config's
    /// file stem (`app_01.ini` ~ `/run/app/app_01.sock`).
    Stem,
    /// The node name equals a template with `{name}` (config file name) and
    /// `{stem}` (without its suffix) replaced.
    Template(String),
    /// The node names each vassal's own config subscribes with (the address
    /// of every `subscribe2`/`subscribe-to`, or its first socket), by config
    /// file name; configs not in the map fall back to [`NodeMatch::Stem`].
    Names(std::collections::BTreeMap<String, Vec<String>>),
}

/// `--max-unavailable`: how many nodes of a key may be out at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unavailable {
    Count(usize),
    /// Percent of the key's nodes, rounded down as Kubernetes does, but
    /// never to zero.
    Percent(u32),
}

impl Unavailable {
    pub fn of(self, total: usize) -> usize {
        match self {
            Unavailable::Count(n) => n,
            Unavailable::Percent(p) => (total * p as usize / 100).max(1),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// K: at least this many live nodes per fastrouter key at every instant.
    pub min_live: usize,
    /// Per vassal, from its touch to its announce back in the fastrouter.
    pub timeout_ms: u64,
    /// Between two reads of each stats socket.
    pub check_interval_ms: u64,
    /// Stop touching new vassals after this many failures (1: the first).
    pub max_failures: usize,
    /// At most this many vassals in flight at once.
    pub max_parallel: usize,
    /// Unsubscribe and wait for the sessions a reload could lose (docs/UWSGI.md §19) before each touch; the bound on
    /// that wait. `None`: no drain.
    pub drain_timeout_ms: Option<u64>,
    /// Write `S` to the FIFO of a reloaded vassal that accepts but never
    /// announces.
    pub repair: bool,
    /// Vassals `S` may be written to (the FIFO repair): those whose config
    /// blocks subscriptions at start (`start-unsubscribed`), whose new
    /// generation stays blocked until an `S` arrives (usually from its
    /// `hook-accepting1-once = writefifo:<fifo> S`). `S` toggles: to any
    /// other vassal it would block its subscriptions, so none is ever
    /// written there; whether such a vassal's own hook already unblocked it
    /// is what its log and a fresh router read decide
    /// (docs/UWSGI.md §9.6.2).
    pub repairable: BTreeSet<String>,
    /// Vassals with `exit-on-reload`: their master exits on a reload and
    /// the Emperor starts the next generation as a new process, so a new
    /// pid after the reload was sent is that reload (docs/UWSGI.md §5).
    pub exit_on_reload: BTreeSet<String>,
    /// Vassals whose log the driver watches, from their touch on, for the
    /// line of a lost accepting hook (`Fact::HookLost`): those with the
    /// `start-unsubscribed` + writefifo `S` pattern, when repair is on.
    pub watch_hook_log: BTreeSet<String>,
    /// After a repair the log proved needed, the tool announces the
    /// unblocked vassal itself (`Task::AnnounceRepaired`); off with
    /// `--no-early-announce`.
    pub announce_after_repair: bool,
    /// Vassals with the `start-unsubscribed` + writefifo `S` pattern that
    /// the tool announces itself once their own log proves the hook's `S`
    /// arrived (`Fact::SubscriptionsOn`): the early announce's default for
    /// that pattern, which may lose its `S` (docs/UWSGI.md §9.6).
    pub announce_when_on: BTreeSet<String>,
    /// Proceed when a key has fewer than K+1 nodes, taking it down to K-1.
    pub allow_downtime: bool,
    /// Reload even when the stats name a uWSGI version with a known reload
    /// defect (`crate::uwsgi_version`); warned instead of refused.
    pub accept_uwsgi_defect: bool,
    pub node_match: NodeMatch,
    /// The fastrouter's `subscription-tolerance`: a node older than this is
    /// not routed to even with `death_mark == 0` (docs/UWSGI.md §9.4). When
    /// [`Settings::node_tolerance_known`] is false this is uWSGI's default,
    /// and each vassal's own subscribe-freq can raise it (see
    /// [`Settings::tolerance_s`]).
    pub node_tolerance_s: i64,
    /// `node_tolerance_s` is the fastrouter's real setting (given with
    /// `--subscription-tolerance`), not a default to be raised.
    pub node_tolerance_known: bool,
    /// Each vassal's `subscribe-freq` in seconds, from its config, by config
    /// name; a vassal not listed announces every
    /// [`Settings::default_subscribe_freq_s`].
    pub subscribe_freq_s: BTreeMap<String, i64>,
    /// uWSGI's default `subscribe-freq` (10 s).
    pub default_subscribe_freq_s: i64,
    /// Vassals whose real `subscribe-freq` the tool could not establish
    /// (its master's command line unreadable, or it loads files the tool
    /// does not follow: docs/UWSGI.md §9.12). Without the fastrouter's
    /// tolerance, a node of theirs the router lists alive is never proof
    /// that they are down, however old (`fsm/AVAILABILITY.md`).
    pub freq_uncertain: BTreeSet<String>,
    /// How long the Emperor may take to register a touch.
    pub notice_window_ms: u64,
    /// The subscription server can be sent unsubscribes (a server is known):
    /// the dead vassals' nodes are then taken out of the fastrouter.
    pub can_unsubscribe: bool,
    /// The fastrouters (by number, as `router_key` numbers them) read over
    /// TCP: each may run on another host, whose clock the tool knows only
    /// once it has measured it from the router's own announces
    /// (`clocks::RouterClock`). Until then nothing that depends on their
    /// nodes' ages is touched (`Engine::clock_allows`). A unix socket's
    /// router shares this host's wall clock.
    pub tcp_routers: BTreeSet<usize>,
    /// The Emperor directory, canonical, to check against the Emperor's own.
    pub emperor_dir: Option<String>,
    /// Give up when a stats socket has not answered for this long.
    pub stats_outage_ms: u64,
    /// At most this many (or this share of) a key's nodes out at once; K is
    /// raised to match.
    pub max_unavailable: Option<Unavailable>,
    /// Reload this many first, and touch no more until they have been live
    /// for `min_ready_ms`.
    pub canary: usize,
    /// A reloaded vassal counts as live only after being subscribed this
    /// long (Kubernetes' minReadySeconds).
    pub min_ready_ms: u64,
    /// Touch nothing new this long after the start.
    pub deadline_ms: Option<u64>,
    /// For configs that are symlinks: the mtime in the *other* mode (the
    /// target's when we touch links, the link's own with `--touch-target`).
    /// An Emperor whose `last_mod` equals it looks at the other file, and
    /// our touch would go unnoticed (docs/UWSGI.md §3).
    pub other_mode_mtimes: BTreeMap<String, i64>,
    /// We touch link targets (`--touch-target`), not links.
    pub touch_target: bool,
    /// Fastrouter read interval while a drain or an announce is awaited (see
    /// `Engine::fast_fastrouter_read_at`); capped by `check_interval_ms`.
    pub fast_fastrouter_ms: u64,
    /// `--probe PATH`: a vassal counts as reloaded only after this request,
    /// sent straight to its socket, is answered with 2xx/3xx.
    pub probe_path: Option<String>,
    /// Early announce: the vassals whose new generation the tool announces
    /// to the fastrouter itself as soon as it accepts, with the nodes it had
    /// before its touch (see `Task::Announce`). Filled by the runtime:
    /// needs a subscription server, never with `--probe`.
    pub early_announce: BTreeSet<String>,
    /// By config name: how many sessions a drained node of that vassal may
    /// still hold when the drain touches it, all of them requests its
    /// workers serve and its graceful reload finishes (docs/UWSGI.md §19;
    /// `VassalConfig::sessions_a_reload_finishes`). A vassal not listed:
    /// 0, the drain waits for `ref == 0`.
    pub drain_sessions_kept: BTreeMap<String, usize>,
    /// `--stale-since`, as the whole wall-clock second uWSGI's timestamps
    /// are compared with (`engine::generation`): only vassals whose running
    /// generation started before it are reloaded. `None`: every vassal.
    pub stale_since_s: Option<i64>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            min_live: 1,
            timeout_ms: 60_000,
            check_interval_ms: 100,
            max_failures: 1,
            max_parallel: usize::MAX,
            drain_timeout_ms: None,
            repair: true,
            repairable: BTreeSet::new(),
            exit_on_reload: BTreeSet::new(),
            watch_hook_log: BTreeSet::new(),
            announce_after_repair: true,
            announce_when_on: BTreeSet::new(),
            allow_downtime: false,
            accept_uwsgi_defect: false,
            node_match: NodeMatch::Stem,
            node_tolerance_s: 17,
            node_tolerance_known: false,
            subscribe_freq_s: BTreeMap::new(),
            default_subscribe_freq_s: 10,
            freq_uncertain: BTreeSet::new(),
            notice_window_ms: 10_000,
            can_unsubscribe: false,
            tcp_routers: BTreeSet::new(),
            emperor_dir: None,
            stats_outage_ms: 30_000,
            max_unavailable: None,
            canary: 0,
            min_ready_ms: 0,
            deadline_ms: None,
            other_mode_mtimes: BTreeMap::new(),
            touch_target: false,
            probe_path: None,
            fast_fastrouter_ms: 20,
            early_announce: BTreeSet::new(),
            drain_sessions_kept: BTreeMap::new(),
            stale_since_s: None,
        }
    }
}

/// Beyond a vassal's subscribe-freq, what its announce may lag: the
/// announce after `accepting` comes on the next master cycle that is a
/// multiple of subscribe-freq (cycles are ~1 s and drift), `last_check` and
/// the wall clock have 1 s resolution, and one announce lost to a full
/// datagram queue is followed by the next one (docs/UWSGI.md §9.1, §9.7).
pub const ANNOUNCE_SLACK_S: i64 = 3;

impl Settings {
    /// The subscribe-freq of the vassal whose config is `config`; for a node
    /// no vassal here owns (another host), the longest of the fleet.
    pub fn subscribe_freq(&self, config: Option<&str>) -> i64 {
        let default = self.default_subscribe_freq_s.max(1);
        match config {
            Some(c) => self.subscribe_freq_s.get(c).copied().unwrap_or(default),
            None => self
                .subscribe_freq_s
                .values()
                .copied()
                .max()
                .unwrap_or(default)
                .max(default),
        }
        .max(1)
    }

    /// How old a node of `config` may be and still be routed to. The
    /// fastrouter's own tolerance when it is known; otherwise uWSGI's default
    /// raised to the vassal's subscribe-freq plus [`ANNOUNCE_SLACK_S`]: a
    /// fleet that announces every 25 s behind a fastrouter that keeps nodes
    /// for 60 s is a valid setup, and its 20 s old nodes are serving.
    pub fn tolerance_s(&self, config: Option<&str>) -> i64 {
        self.tolerance_for_freq(self.subscribe_freq(config))
    }

    /// [`Settings::tolerance_s`] of a vassal that announces every
    /// `freq_s` seconds.
    pub fn tolerance_for_freq(&self, freq_s: i64) -> i64 {
        if self.node_tolerance_known {
            self.node_tolerance_s
        } else {
            self.node_tolerance_s
                .max(freq_s.max(1).saturating_add(ANNOUNCE_SLACK_S))
        }
    }

    /// How long after it starts accepting a vassal's announce may take
    /// before its silence is evidence (a blocked subscription, or a
    /// generation that announced once and then stopped).
    pub fn announce_window_ms(&self, config: &str) -> u64 {
        Self::window_for_freq(self.subscribe_freq(Some(config)))
    }

    /// [`Settings::announce_window_ms`] of a vassal that announces every
    /// `freq_s` seconds.
    pub fn window_for_freq(freq_s: i64) -> u64 {
        (freq_s.max(1).saturating_add(ANNOUNCE_SLACK_S) as u64).saturating_mul(1000)
    }
}
